import OpenAI from "openai"

// Before: the official SDK pointed at W&B Inference (2 retries and a 10-minute timeout by default).
export const makeOpenAI = (apiKey: string, baseURL = "https://api.inference.wandb.ai/v1") =>
  new OpenAI({ apiKey, baseURL, project: "my-team/my-project" })

export const summarise = async (openai: OpenAI, text: string): Promise<string> => {
  try {
    const completion = await openai.chat.completions.create({
      model: "meta-llama/Llama-3.1-8B-Instruct",
      messages: [{ role: "user", content: `Summarise in one line: ${text}` }],
      max_tokens: 100
    })
    return completion.choices[0].message.content ?? ""
  } catch (error) {
    // One class per status, found with instanceof; nothing says which ones can happen.
    if (error instanceof OpenAI.RateLimitError) return "Busy: try again later" // a quota 429 lands here too
    if (error instanceof OpenAI.APIError && error.status === 402) return "Out of credits: check billing"
    return Promise.reject(error) // anything else goes to the caller, as `unknown`
  }
}
